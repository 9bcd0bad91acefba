# A Rails action answering the callback protocol (as in Celery's docs).
# Route it in config/routes.rb:  match "multiply" => "tasks#multiply", via: [:get, :post]
class TasksController < ApplicationController
  skip_forgery_protection

  def multiply
    @x = params[:x].to_i
    @y = params[:y].to_i
    @status = {:status => "success", :retval => @x * @y}
    render :json => @status
  end
end
